"""Code that runs inside byoc images: the `serve` supervisor, the SageMaker front
and one adapter per model server. Kept out of the build package on purpose."""
