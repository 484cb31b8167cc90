#!/bin/sh
# Stand-in picker: one line per input file with its name and size in bytes.
set -eu
name=$(basename "$INPUT_FILE_PATH")
printf '%s %s\n' "$name" "$(wc -c < "$INPUT_FILE_PATH" | tr -d ' ')" > "$TMP_OUTPUT_DIR/${name%.*}.picks"
