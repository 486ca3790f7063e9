package main

import "io"

func callCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int { return exitUsage }
func sessionsCmd(args []string, stdout, stderr io.Writer) int              { return exitUsage }
func tokenCmd(args []string, stdout, stderr io.Writer) int                 { return exitUsage }
func healthCmd(args []string, stdout, stderr io.Writer) int                { return exitUsage }
