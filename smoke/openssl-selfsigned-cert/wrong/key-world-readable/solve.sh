#!/bin/sh
# Wrong answer: everything right except the private key is left readable by all (644).
KEY_MODE=644 exec sh "$(dirname "$0")/../../solution/solve.sh"
