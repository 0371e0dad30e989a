#!/bin/sh
# pip-install-model.sh MODEL_REQUIREMENTS SERVER_REQUIREMENTS
# The model's pip requirements, installed into the image's venv at build time (never at
# start: C15), through pip-install.sh (same index, wheelhouse and CA as the rest). The
# image's torch and the server's own pins are constraints: a requirement that would
# replace them fails the build, and says which. Failures print BYOC-ERROR/BYOC-TIP lines,
# which `build.py` shows as its ERROR and TIP.
set -eu
model=$1
server=$2
if ! grep -q '[^[:space:]]' "$model"; then
    echo "no model requirements"
    exit 0
fi
constraints=/tmp/byoc-constraints.txt
/opt/venv/bin/python -c 'import importlib.metadata as m; print("torch==" + m.version("torch"))' \
    > "$constraints"
grep -E '^[A-Za-z0-9_.-]+==' "$server" >> "$constraints" || true
log=/tmp/byoc-pip.log
if sh /byoc-build/pip-install.sh -c "$constraints" -r "$model" > "$log" 2>&1; then
    cat "$log"
    exit 0
fi
cat "$log"
kept=$(tr '\n' ' ' < "$constraints")
# pip names the conflicting requirement in "The conflict is caused by:" lines.
culprit=$(sed -n '/conflict is caused by/,/^$/p' "$log" | grep -E 'depends on|requested' \
          | grep -v '(constraint)' | head -3 | sed 's/^ *//' | tr '\n' ';' | sed 's/;$//')
if grep -q 'conflict is caused by' "$log"; then
    echo "BYOC-ERROR model requirements would replace what the image keeps ($kept): $culprit"
    echo "BYOC-TIP drop or loosen that requirement: the image's torch and server packages stay as built"
else
    last=$(grep -E '^ERROR:' "$log" | tail -1 | cut -c1-300)
    echo "BYOC-ERROR model requirements do not install: ${last:-pip failed, see above}"
    echo "BYOC-TIP check the requirement names and versions (pip index: pip config list), or put wheels in --wheelhouse"
fi
exit 1
