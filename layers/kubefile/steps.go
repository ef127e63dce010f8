package kubefile

import (
	"fmt"
	"sort"
	"strings"
)

// Step is an instruction with its ARG and ENV variables expanded, ready to
// execute. Args per instruction:
//
//	FROM         [image]                 Flags["platform"] if given
//	COPY, ADD    [src..., dest]          sources keep ${ARCH}: see ResolveArch
//	RUN          [command line] (shell form, unexpanded) or argv (JSON)
//	CMD          [command line] or argv (JSON); deprecated, run-time
//	CMDS         commands, unexpanded (run at install time with the env)
//	APPCMDS      [app, command...], unexpanded
//	APP, CNI, CSI [app, source...]       sources keep ${ARCH}
//	APPENV       [app]                   values in Pairs
//	LAUNCH       [app...]
//	MAINTAINER   [name]
//	KUBEVERSION  [constraint]
//	ENV, LABEL   nil                     values in Pairs
//	ARG          nil                     Pairs hold the value in effect
//
// Variables are expanded in FROM, COPY, ADD, ENV, ARG defaults, LABEL,
// APP/CNI/CSI sources, APPENV values and KUBEVERSION, never in commands.
type Step struct {
	Line  int
	Cmd   string
	Flags map[string]string
	Args  []string
	JSON  bool
	Pairs []KeyValue
	// Env is the environment in effect after FROM, as "NAME=value": the base
	// image's environment and ENV values, then ARG values that no ENV
	// shadows. The builder runs RUN with it.
	Env []string
}

// Steps expands every instruction in order. buildArgs are --build-arg
// values, which override ARG defaults; baseEnv is the base image's config
// environment ("NAME=value"), visible to expansion and to RUN. The returned
// warnings name build args that no ARG declares.
func (k *Kubefile) Steps(buildArgs map[string]string, baseEnv []string) ([]Step, []string, error) {
	return k.evaluate(buildArgs, baseEnv, false)
}

// From expands the FROM instruction alone, with the ARGs declared before
// it, so that the builder can fetch the base image (and its environment
// and apps) before calling Validate and Steps.
func (k *Kubefile) From(buildArgs map[string]string) (Step, error) {
	steps, _, err := k.evaluate(buildArgs, nil, true)
	if err != nil {
		return Step{}, err
	}
	if len(steps) == 0 || steps[len(steps)-1].Cmd != From {
		return Step{}, errorf(k.File, 1, "missing FROM instruction")
	}
	return steps[len(steps)-1], nil
}

func (k *Kubefile) evaluate(buildArgs map[string]string, baseEnv []string, stopAtFrom bool) ([]Step, []string, error) {
	var (
		global = &vars{}
		sc     *scope // nil until FROM
		steps  []Step
		used   = map[string]bool{}
	)
	for _, in := range k.Instructions {
		lookup := global.lookup
		if sc != nil {
			lookup = sc.lookup
		}
		st, err := expandStep(in, lookup)
		if err != nil {
			return nil, nil, &Error{File: k.File, Line: in.Line, Msg: fmt.Sprintf("%s: %v", in.Cmd, err)}
		}
		switch in.Cmd {
		case From:
			sc = newScope(baseEnv)
		case Arg:
			target := global
			if sc != nil {
				target = &sc.args
			}
			st.Pairs = nil
			for _, p := range in.rawPairs {
				used[p.Key] = true
				kv := KeyValue{Key: p.Key}
				g, inGlobal := global.get(p.Key)
				switch v, ok := buildArgs[p.Key]; {
				case ok:
					kv.Value = v
				case !p.NoValue:
					kv.Value, err = (&expander{lookup: lookup}).expand(p.Value)
					if err != nil {
						return nil, nil, &Error{File: k.File, Line: in.Line, Msg: fmt.Sprintf("ARG %s: %v", p.Key, err)}
					}
				case sc != nil && inGlobal && g.set:
					kv.Value = g.value
				default:
					kv.NoValue = true
				}
				target.put(p.Key, kv.Value, !kv.NoValue)
				st.Pairs = append(st.Pairs, kv)
			}
		case Env:
			for _, p := range st.Pairs {
				sc.env.put(p.Key, p.Value, true)
			}
		}
		if sc != nil && in.Cmd != From {
			st.Env = sc.environ()
		}
		steps = append(steps, st)
		if stopAtFrom && in.Cmd == From {
			return steps, nil, nil
		}
	}
	var warnings []string
	for name := range buildArgs {
		if !used[name] {
			warnings = append(warnings, fmt.Sprintf("%s: build argument %q is not declared by any ARG", k.File, name))
		}
	}
	sort.Strings(warnings)
	return steps, warnings, nil
}

// expandStep expands one instruction with the variables visible to it.
// ARG is finished by the caller, which owns the scopes.
func expandStep(in Instruction, lookup func(string) (string, bool)) (Step, error) {
	st := Step{Line: in.Line, Cmd: in.Cmd, JSON: in.JSON}
	plain := &expander{lookup: lookup, jsonElem: in.JSON}
	arch := &expander{lookup: lookup, jsonElem: in.JSON, deferArch: true}
	for _, name := range flagNames(in.rawFlags) {
		v, err := plain.expand(in.rawFlags[name])
		if err != nil {
			return st, fmt.Errorf("--%s: %w", name, err)
		}
		if st.Flags == nil {
			st.Flags = map[string]string{}
		}
		st.Flags[name] = v
	}
	var err error
	switch in.Cmd {
	case From, KubeVersion:
		st.Args, err = plain.expandAll(in.rawArgs)
	case Copy, Add:
		n := len(in.rawArgs) - 1
		var srcs []string
		if srcs, err = arch.expandAll(in.rawArgs[:n]); err != nil {
			return st, err
		}
		var dest string
		if dest, err = plain.expand(in.rawArgs[n]); err != nil {
			return st, err
		}
		st.Args = append(srcs, dest)
	case App, CNI, CSI:
		var srcs []string
		if srcs, err = arch.expandAll(in.rawArgs[1:]); err != nil {
			return st, err
		}
		for _, s := range srcs {
			if err := checkSource(s); err != nil {
				return st, fmt.Errorf("app %q: %w", in.Args[0], err)
			}
		}
		st.Args = append([]string{in.Args[0]}, srcs...)
	case Env, Label, AppEnv:
		st.Args = append([]string(nil), in.Args...)
		for _, p := range in.rawPairs {
			v, err := plain.expand(p.Value)
			if err != nil {
				return st, err
			}
			st.Pairs = append(st.Pairs, KeyValue{Key: p.Key, Value: v})
		}
	default: // RUN, CMD, CMDS, APPCMDS, LAUNCH, MAINTAINER, ARG
		st.Args = append([]string(nil), in.Args...)
	}
	return st, err
}

// vars is an ordered set of variables.
type vars struct {
	keys []string
	vals map[string]varValue
}

type varValue struct {
	value string
	set   bool
}

func (v *vars) put(name, value string, set bool) {
	if v.vals == nil {
		v.vals = map[string]varValue{}
	}
	if _, ok := v.vals[name]; !ok {
		v.keys = append(v.keys, name)
	}
	v.vals[name] = varValue{value: value, set: set}
}

func (v *vars) get(name string) (varValue, bool) {
	x, ok := v.vals[name]
	return x, ok
}

func (v *vars) lookup(name string) (string, bool) {
	x, ok := v.vals[name]
	return x.value, ok && x.set
}

// scope holds the variables after FROM: ENV shadows ARG, as in Docker.
type scope struct {
	env  vars
	args vars
}

func newScope(baseEnv []string) *scope {
	sc := &scope{}
	for _, kv := range baseEnv {
		name, value, _ := strings.Cut(kv, "=")
		if name != "" {
			sc.env.put(name, value, true)
		}
	}
	return sc
}

func (sc *scope) lookup(name string) (string, bool) {
	if v, ok := sc.env.lookup(name); ok {
		return v, true
	}
	return sc.args.lookup(name)
}

// environ lists ENV then unshadowed, set ARG values as NAME=value.
func (sc *scope) environ() []string {
	out := make([]string, 0, len(sc.env.keys)+len(sc.args.keys))
	for _, k := range sc.env.keys {
		out = append(out, k+"="+sc.env.vals[k].value)
	}
	for _, k := range sc.args.keys {
		if _, shadowed := sc.env.vals[k]; shadowed || !sc.args.vals[k].set {
			continue
		}
		out = append(out, k+"="+sc.args.vals[k].value)
	}
	return out
}
