#!/bin/sh
# Stage 1: checksum and statistics of one CSV file (header line, then rows; the value is column $VALUE_COLUMN).
set -eu
name=$(basename "$INPUT_FILE_PATH" .csv)
sha=$(sha256sum "$INPUT_FILE_PATH" | cut -d' ' -f1)
awk -F, -v col="${VALUE_COLUMN:-3}" -v sha="$sha" -v key="$STORAGE_OBJECT_KEY" '
  NR == 1 { next }
  { n++; v = $col + 0; sum += v; if (n == 1 || v < min) min = v; if (n == 1 || v > max) max = v }
  END {
    printf "source=%s\nsha256=%s\nrows=%d\nsum=%.6f\nmin=%.6f\nmax=%.6f\n", key, sha, n, sum, min, max
  }' "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/$name.stats"
echo "stats for $STORAGE_OBJECT_KEY written"
