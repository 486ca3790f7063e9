//go:build !unix

package main

// raiseOpenFiles does nothing where there is no such limit to raise.
func raiseOpenFiles() {}
