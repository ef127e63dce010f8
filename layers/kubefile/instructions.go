package kubefile

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// allowedFlags lists the flags each instruction accepts; instructions that
// are not listed accept none and do not look for flags at all.
var allowedFlags = map[string][]string{
	From: {"platform"},
	Copy: {"chown", "chmod"},
	Add:  {"chown", "chmod"},
	Run:  {},
}

// argParsers parse the text after the keyword (and its flags) into in.
var argParsers = map[string]func(in *Instruction, rest string) error{
	From:        parseFrom,
	Copy:        parseCopy,
	Add:         parseCopy,
	Run:         parseCommand,
	Cmd:         parseCommand,
	Cmds:        parseCmds,
	Env:         parsePairs,
	Arg:         parsePairs,
	Label:       parsePairs,
	Maintainer:  parseMaintainer,
	App:         parseApp,
	CNI:         parseApp,
	CSI:         parseApp,
	AppCmds:     parseAppCmds,
	AppEnv:      parseAppEnv,
	Launch:      parseLaunch,
	KubeVersion: parseKubeVersion,
}

// parseInstruction parses one logical line.
func parseInstruction(line int, text string) (Instruction, error) {
	keyword, rest := splitKeyword(text)
	in := Instruction{Line: line, Cmd: keyword, Raw: text}
	parse, ok := argParsers[keyword]
	if !ok {
		return in, fmt.Errorf("unknown instruction %q", keyword)
	}
	if allowed, ok := allowedFlags[keyword]; ok {
		raw, remainder, err := splitFlags(rest)
		if err != nil {
			return in, fmt.Errorf("%s: %w", keyword, err)
		}
		for _, name := range flagNames(raw) {
			if !contains(allowed, name) {
				return in, fmt.Errorf("%s does not accept flag --%s", keyword, name)
			}
			if in.Flags == nil {
				in.Flags = map[string]string{}
			}
			if in.Flags[name], err = unquote(raw[name]); err != nil {
				return in, fmt.Errorf("%s --%s: %w", keyword, name, err)
			}
		}
		in.rawFlags = raw
		rest = remainder
	}
	if err := parse(&in, rest); err != nil {
		return in, fmt.Errorf("%s: %w", keyword, err)
	}
	return in, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// setWords sets the raw and unquoted arguments from shell-form words.
func (in *Instruction) setWords(words []string) error {
	args, err := unquoteAll(words)
	if err != nil {
		return err
	}
	in.rawArgs, in.Args = words, args
	return nil
}

func parseFrom(in *Instruction, rest string) error {
	words, err := splitWords(rest)
	if err != nil {
		return err
	}
	switch {
	case len(words) == 1:
	case len(words) == 3 && strings.EqualFold(words[1], "AS"):
		words = words[:1] // one stage only: the name has no use
	default:
		return fmt.Errorf("want exactly one argument (an image or scratch), got %d", len(words))
	}
	return in.setWords(words)
}

func parseCopy(in *Instruction, rest string) error {
	if looksLikeJSON(rest) {
		args, err := parseJSONArray(rest)
		if err != nil {
			return err
		}
		in.JSON, in.Args, in.rawArgs = true, args, args
	} else {
		words, err := splitWords(rest)
		if err != nil {
			return err
		}
		if err := in.setWords(words); err != nil {
			return err
		}
	}
	if len(in.Args) < 2 {
		return fmt.Errorf("want at least 2 arguments (source... destination), got %d", len(in.Args))
	}
	return nil
}

// parseCommand parses RUN and CMD: a JSON array (exec form) or the rest of
// the line (shell form), kept verbatim.
func parseCommand(in *Instruction, rest string) error {
	if looksLikeJSON(rest) {
		args, err := parseJSONArray(rest)
		if err != nil {
			return err
		}
		if len(args) == 0 {
			return errors.New("empty JSON array: want a command")
		}
		in.JSON, in.Args = true, args
		return nil
	}
	if rest == "" {
		return errors.New("want a command")
	}
	in.Args = []string{rest}
	return nil
}

// parseCmds parses CMDS: a JSON array of commands, or one shell command.
func parseCmds(in *Instruction, rest string) error {
	if strings.HasPrefix(rest, "[") {
		args, err := parseJSONArray(rest)
		if err != nil {
			return err
		}
		if len(args) == 0 {
			return errors.New(`empty JSON array: want ["command", ...]`)
		}
		in.JSON, in.Args = true, args
		return nil
	}
	if rest == "" {
		return errors.New(`want a JSON array of commands: CMDS ["command", ...]`)
	}
	in.Args = []string{rest}
	return nil
}

func parseMaintainer(in *Instruction, rest string) error {
	if rest == "" {
		return errors.New("want a name")
	}
	in.Args = []string{rest}
	return nil
}

// parsePairs parses ENV, LABEL and ARG. ENV and LABEL also take the legacy
// form "NAME value...", where the value is the rest of the line.
func parsePairs(in *Instruction, rest string) error {
	words, err := splitWords(rest)
	if err != nil {
		return err
	}
	if len(words) == 0 {
		if in.Cmd == Arg {
			return errors.New("want a name or name=default")
		}
		return errors.New("want at least one name=value")
	}
	if (in.Cmd == Env || in.Cmd == Label) && !strings.Contains(words[0], "=") {
		key, value := words[0], trimBlank(rest[len(words[0]):])
		if value == "" {
			return fmt.Errorf("%q has no value: want %s name=value or %s name value", key, in.Cmd, in.Cmd)
		}
		return in.addPairs([]KeyValue{{Key: key, Value: value}})
	}
	pairs := make([]KeyValue, 0, len(words))
	for _, w := range words {
		key, value, ok := strings.Cut(w, "=")
		if !ok && in.Cmd != Arg {
			return fmt.Errorf("syntax error: %q is not of the form name=value", w)
		}
		pairs = append(pairs, KeyValue{Key: key, Value: value, NoValue: !ok})
	}
	return in.addPairs(pairs)
}

// addPairs records raw pairs and their unquoted form, checking names.
func (in *Instruction) addPairs(raw []KeyValue) error {
	for _, p := range raw {
		key, err := unquote(p.Key)
		if err != nil {
			return err
		}
		if key == "" {
			return fmt.Errorf("empty name in %q", p.Key+"="+p.Value)
		}
		if in.Cmd != Label && strings.ContainsAny(key, blanks+"$") {
			return fmt.Errorf("invalid name %q", key)
		}
		value, err := unquote(p.Value)
		if err != nil {
			return err
		}
		in.Pairs = append(in.Pairs, KeyValue{Key: key, Value: value, NoValue: p.NoValue})
		in.rawPairs = append(in.rawPairs, KeyValue{Key: key, Value: p.Value, NoValue: p.NoValue})
	}
	return nil
}

// appName is what an app name may look like: it names a directory under
// application/apps/.
var appName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func checkAppName(name string) error {
	if !appName.MatchString(name) {
		return fmt.Errorf("invalid app name %q: want letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// parseApp parses APP, CNI and CSI: a name and one or more sources.
func parseApp(in *Instruction, rest string) error {
	words, err := splitWords(rest)
	if err != nil {
		return err
	}
	if len(words) < 2 {
		return fmt.Errorf("want an app name and at least one source (local://path, http:// or https:// URL), got %d arguments", len(words))
	}
	if err := in.setWords(words); err != nil {
		return err
	}
	if err := checkAppName(in.Args[0]); err != nil {
		return err
	}
	for _, src := range in.Args[1:] {
		if err := checkSource(src); err != nil {
			return fmt.Errorf("app %q: %w", in.Args[0], err)
		}
	}
	return nil
}

// splitAppName takes the app name off the front of rest.
func splitAppName(rest string) (name, remainder string, err error) {
	i := strings.IndexAny(rest, blanks)
	if i < 0 {
		name, remainder = rest, ""
	} else {
		name, remainder = rest[:i], trimLeftBlank(rest[i:])
	}
	if name == "" {
		return "", "", errors.New("want an app name")
	}
	return name, remainder, checkAppName(name)
}

// parseAppCmds parses APPCMDS name ["cmd", ...].
func parseAppCmds(in *Instruction, rest string) error {
	name, cmds, err := splitAppName(rest)
	if err != nil {
		return err
	}
	list, err := parseJSONArray(cmds)
	if errors.Is(err, errNotJSON) {
		return errors.New(`want an app name and a JSON array: APPCMDS name ["command", ...]`)
	}
	if err != nil {
		return err
	}
	if len(list) == 0 {
		return errors.New(`empty JSON array: want APPCMDS name ["command", ...]`)
	}
	in.JSON = true
	in.Args = append([]string{name}, list...)
	return nil
}

// parseAppEnv parses APPENV name k=v....
func parseAppEnv(in *Instruction, rest string) error {
	name, env, err := splitAppName(rest)
	if err != nil {
		return err
	}
	if env == "" {
		return errors.New("want an app name and at least one name=value")
	}
	if err := parsePairs(in, env); err != nil {
		return err
	}
	in.Args = []string{name}
	return nil
}

// parseLaunch parses LAUNCH ["a","b"] or LAUNCH a b.
func parseLaunch(in *Instruction, rest string) error {
	if strings.HasPrefix(rest, "[") {
		list, err := parseJSONArray(rest)
		if err != nil {
			return err
		}
		in.JSON, in.Args = true, list
	} else {
		words, err := splitWords(rest)
		if err != nil {
			return err
		}
		if err := in.setWords(words); err != nil {
			return err
		}
		in.rawArgs = nil
	}
	if len(in.Args) == 0 {
		return errors.New("want at least one app name")
	}
	seen := map[string]bool{}
	for _, name := range in.Args {
		if seen[name] {
			return fmt.Errorf("app %q listed twice", name)
		}
		seen[name] = true
	}
	return nil
}

// parseKubeVersion parses KUBEVERSION "constraint" or an unquoted
// constraint, which is the rest of the line.
func parseKubeVersion(in *Instruction, rest string) error {
	if rest == "" {
		return errors.New("want a version constraint, e.g. KUBEVERSION \">=1.22 <1.26\"")
	}
	raw := rest
	if rest[0] == '"' || rest[0] == '\'' {
		words, err := splitWords(rest)
		if err != nil {
			return err
		}
		if len(words) != 1 {
			return fmt.Errorf("want one quoted constraint, got %d arguments", len(words))
		}
		raw = words[0]
	}
	return in.setWords([]string{raw})
}

// flagNames returns the names of flags, sorted, for messages.
func flagNames(flags map[string]string) []string {
	names := make([]string, 0, len(flags))
	for n := range flags {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
