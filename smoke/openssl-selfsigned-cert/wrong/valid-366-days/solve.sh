#!/bin/sh
# Wrong answer: everything right except a certificate valid for 366 days.
DAYS=366 exec sh "$(dirname "$0")/../../solution/solve.sh"
