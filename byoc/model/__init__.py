"""The user's model: described as data (spec, describe), checked with each server's own
rules (mar, repository), laid into the build context (assemble), proven with its samples
(samples)."""
