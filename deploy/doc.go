// Package deploy holds the tests of what a newcomer and an operator run:
// the first `make run` from a fresh clone, and the deployment files beside
// this package.
package deploy
