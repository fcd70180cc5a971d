#!/usr/bin/env bash
# greet NAME: prints "hello, NAME".
set -euo pipefail
printf 'hello, %s\n' "${1:-world}"
