// Package kubefile parses Kubefiles: sealer's Dockerfile-like build recipes
// for cluster images.
//
// A Kubefile has one stage. Build-time instructions (FROM, COPY, ADD, RUN,
// ENV, ARG, LABEL, MAINTAINER) work as in a Dockerfile; the others describe
// what the image does when a cluster is installed from it (APP, APPCMDS,
// APPENV, LAUNCH, CMDS, the deprecated CMD, CNI, CSI, KUBEVERSION).
//
// Use it in three steps:
//
//  1. Parse reads the text and checks syntax and structure. When the image
//     is built FROM scratch it also checks that every LAUNCH, APPCMDS and
//     APPENV names a declared app.
//  2. For any other base image, call Validate with the names of the apps the
//     base image already carries (from its sealer.image.extension).
//  3. Steps expands ARG and ENV variables and returns one Step per
//     instruction, ready for the builder to execute.
//
// Every error from Parse, Validate and Steps is an *Error naming the file
// and the line.
package kubefile

import (
	"fmt"
	"io"
	"strings"
)

// Instruction names, as they appear in Instruction.Cmd and Step.Cmd.
const (
	From        = "FROM"
	Copy        = "COPY"
	Add         = "ADD"
	Run         = "RUN"
	Cmd         = "CMD" // deprecated; use CMDS or LAUNCH
	Cmds        = "CMDS"
	Env         = "ENV"
	Arg         = "ARG"
	Label       = "LABEL"
	Maintainer  = "MAINTAINER"
	App         = "APP"
	AppCmds     = "APPCMDS"
	AppEnv      = "APPENV"
	Launch      = "LAUNCH"
	CNI         = "CNI"
	CSI         = "CSI"
	KubeVersion = "KUBEVERSION"
)

// Scratch is the FROM argument for an image without a base.
const Scratch = "scratch"

// MaxSize is the largest Kubefile Parse reads, in bytes.
const MaxSize = 4 << 20

// Kubefile is a parsed Kubefile.
type Kubefile struct {
	// File is the name used in error messages, as given to Parse.
	File string
	// Instructions in file order.
	Instructions []Instruction
	// Warnings are non-fatal findings, each formatted "FILE:LINE: message":
	// use of the deprecated CMD, empty continuation lines.
	Warnings []string
}

// Instruction is one instruction as written, before variable expansion.
type Instruction struct {
	// Line is the 1-based line on which the instruction starts.
	Line int
	// Cmd is the instruction name in upper case, e.g. "COPY".
	Cmd string
	// Flags holds --name=value flags (FROM --platform, COPY/ADD --chown and
	// --chmod), with quotes removed but variables not expanded.
	Flags map[string]string
	// Args are the arguments with quotes removed but variables not expanded.
	// Their layout per instruction is the same as in Step.Args. For ENV,
	// LABEL, ARG and APPENV the pairs are in Pairs instead (APPENV keeps the
	// app name in Args[0]).
	Args []string
	// JSON reports that Args came from a JSON array, e.g. RUN ["a","b"].
	JSON bool
	// Pairs holds the name=value pairs of ENV, LABEL, ARG and APPENV.
	Pairs []KeyValue
	// Raw is the instruction text with continuation lines joined.
	Raw string

	// rawFlags and rawArgs keep quotes and escapes for expansion.
	rawFlags map[string]string
	rawArgs  []string
	rawPairs []KeyValue
}

// KeyValue is one name=value pair of ENV, LABEL, ARG or APPENV.
type KeyValue struct {
	Key   string
	Value string
	// NoValue is set for an ARG declared without a default (`ARG NAME`),
	// and in a Step for an ARG that ended up with no value at all.
	NoValue bool
}

// Error is a problem in a Kubefile, located by file and line.
type Error struct {
	File string
	Line int
	Msg  string
}

// Error returns "FILE:LINE: message".
func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

func errorf(file string, line int, format string, args ...any) *Error {
	return &Error{File: file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// Parse reads a Kubefile from r. file names it in errors and warnings.
// Parse checks syntax and structure; see the package documentation for the
// checks that need the base image (Validate).
func Parse(file string, r io.Reader) (*Kubefile, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	if len(data) > MaxSize {
		return nil, &Error{File: file, Line: 1, Msg: fmt.Sprintf("larger than %d bytes", MaxSize)}
	}
	lines, warnLines := logicalLines(data)
	k := &Kubefile{File: file}
	for _, l := range warnLines {
		k.Warnings = append(k.Warnings, fmt.Sprintf("%s:%d: empty continuation line; it will be an error in Docker", file, l))
	}
	for _, l := range lines {
		in, err := parseInstruction(l.line, l.text)
		if err != nil {
			return nil, &Error{File: file, Line: l.line, Msg: err.Error()}
		}
		k.Instructions = append(k.Instructions, in)
	}
	if err := k.checkStructure(); err != nil {
		return nil, err
	}
	if k.fromScratch() {
		if err := k.Validate(nil); err != nil {
			return nil, err
		}
	}
	for _, in := range k.Instructions {
		if in.Cmd == Cmd {
			k.Warnings = append(k.Warnings, fmt.Sprintf("%s:%d: CMD is deprecated; use CMDS or LAUNCH", file, in.Line))
			break
		}
	}
	return k, nil
}

// Apps returns the names of the apps that APP, CNI and CSI declare, in file
// order.
func (k *Kubefile) Apps() []string {
	var names []string
	for _, in := range k.Instructions {
		if isAppDecl(in.Cmd) {
			names = append(names, in.Args[0])
		}
	}
	return names
}

// fromScratch reports whether the FROM instruction names scratch literally.
func (k *Kubefile) fromScratch() bool {
	for _, in := range k.Instructions {
		if in.Cmd == From {
			return strings.EqualFold(in.Args[0], Scratch)
		}
	}
	return false
}

func isAppDecl(cmd string) bool {
	return cmd == App || cmd == CNI || cmd == CSI
}
