#!/bin/sh
# Stand-in locator: wraps the picks in a small JSON document.
set -eu
name=$(basename "$INPUT_FILE_PATH")
printf '{"picks": "%s"}\n' "$(cat "$INPUT_FILE_PATH")" > "$TMP_OUTPUT_DIR/${name%.*}.json"
