#!/bin/sh
# Stage 2: one JSON report from one statistics file (adds the mean).
set -eu
name=$(basename "$INPUT_FILE_PATH" .stats)
awk -F= '
  { value[$1] = $2 }
  END {
    mean = value["rows"] > 0 ? value["sum"] / value["rows"] : 0
    printf "{\"source\": \"%s\", \"sha256\": \"%s\", \"rows\": %d, \"mean\": %.6f, \"min\": %s, \"max\": %s}\n",
      value["source"], value["sha256"], value["rows"], mean, value["min"], value["max"]
  }' "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/$name.report.json"
echo "report for $name written"
