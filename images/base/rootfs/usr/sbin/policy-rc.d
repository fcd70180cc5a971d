#!/bin/sh
# Services must not start while packages are installed in a build container.
exit 101
