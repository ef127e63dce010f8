package kubefile

// checkStructure checks the rules that span instructions, following
// sealer: one FROM, first (after ARGs); at most one LAUNCH and one CMDS,
// each the last instruction, so never both; no LAUNCH with CMD; app names
// declared once.
func (k *Kubefile) checkStructure() error {
	ins := k.Instructions
	if len(ins) == 0 {
		return errorf(k.File, 1, "missing FROM instruction")
	}
	from := -1
	for i, in := range ins {
		switch {
		case in.Cmd == From && from >= 0:
			return errorf(k.File, in.Line, "second FROM (first at line %d): only one stage is supported", ins[from].Line)
		case in.Cmd == From:
			from = i
		case from < 0 && in.Cmd != Arg:
			return errorf(k.File, in.Line, "%s before FROM: FROM must be the first instruction (only ARG may come before it)", in.Cmd)
		}
	}
	if from < 0 {
		return errorf(k.File, ins[0].Line, "missing FROM instruction")
	}

	var launch, cmds, cmd []int // lines
	apps := map[string]int{}
	for _, in := range ins {
		switch in.Cmd {
		case Launch:
			launch = append(launch, in.Line)
		case Cmds:
			cmds = append(cmds, in.Line)
		case Cmd:
			cmd = append(cmd, in.Line)
		case App, CNI, CSI:
			if first, ok := apps[in.Args[0]]; ok {
				return errorf(k.File, in.Line, "app %q already declared at line %d", in.Args[0], first)
			}
			apps[in.Args[0]] = in.Line
		}
	}
	if len(launch) > 1 {
		return errorf(k.File, launch[1], "second LAUNCH (first at line %d): only one is allowed", launch[0])
	}
	if len(cmds) > 1 {
		return errorf(k.File, cmds[1], "second CMDS (first at line %d): only one is allowed", cmds[0])
	}
	if len(launch) == 1 && len(cmds) == 1 {
		return errorf(k.File, max(launch[0], cmds[0]), "LAUNCH (line %d) and CMDS (line %d) cannot both be used: each must be the last instruction", launch[0], cmds[0])
	}
	if len(launch) == 1 && len(cmd) > 0 {
		return errorf(k.File, launch[0], "LAUNCH cannot be combined with CMD (line %d)", cmd[0])
	}
	last := ins[len(ins)-1].Line
	if len(launch) == 1 && launch[0] != last {
		return errorf(k.File, launch[0], "LAUNCH must be the last instruction")
	}
	if len(cmds) == 1 && cmds[0] != last {
		return errorf(k.File, cmds[0], "CMDS must be the last instruction")
	}
	return nil
}

// Validate checks that every LAUNCH, APPCMDS and APPENV names an app that
// is declared before it by APP, CNI or CSI, or inherited from the base
// image (inheritedApps: the application names in the base image's
// sealer.image.extension). Parse already runs it with no inherited apps when
// the Kubefile is FROM scratch; the builder calls it for any other base.
func (k *Kubefile) Validate(inheritedApps []string) error {
	declared := make(map[string]bool, len(inheritedApps))
	for _, name := range inheritedApps {
		declared[name] = true
	}
	for _, in := range k.Instructions {
		switch in.Cmd {
		case App, CNI, CSI:
			declared[in.Args[0]] = true
		case AppCmds, AppEnv:
			if !declared[in.Args[0]] {
				return errorf(k.File, in.Line, "%s for undeclared app %q: declare it first with APP, CNI or CSI", in.Cmd, in.Args[0])
			}
		case Launch:
			for _, name := range in.Args {
				if !declared[name] {
					return errorf(k.File, in.Line, "LAUNCH of undeclared app %q: declare it with APP, CNI or CSI", name)
				}
			}
		}
	}
	return nil
}
