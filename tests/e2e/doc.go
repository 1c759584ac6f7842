// Package e2e holds the end-to-end tests: they boot the artifacts that
// ./earthly.sh built in QEMU and check the running system from inside.
// They carry the "e2e" build tag and run from ./earthly.sh +test, which
// builds the artifacts first and passes their paths in KAIROS_E2E_* variables.
package e2e
