package extension

import (
	"fmt"
	"path"
	"strings"
)

// AppsDir is where APP, CNI and CSI put each app, relative to the rootfs.
const AppsDir = "application/apps"

// AppRoot returns the directory of app name relative to the rootfs, with a
// trailing slash as sealer writes it: "application/apps/<name>/". The
// builder copies the app's sources there.
func AppRoot(name string) string {
	return AppsDir + "/" + name + "/"
}

// LaunchCmd returns the shell command that launches a, as sealer builds it,
// with appRoot the app's directory as seen from where the command runs
// (sealer runs it from the rootfs, so AppRoot(a.Name)):
//
//   - APPCMDS: "cd <appRoot> && <cmds joined by spaces>"
//   - kube:    "kubectl apply -f <appRoot>/<file>" per file, joined by " && "
//   - helm:    "helm install <name> <appRoot>"
//   - shell:   "bash <appRoot>/<file>" per file, joined by " && "
//
// An app of unknown type without APPCMDS has no command ("").
func (a *Application) LaunchCmd(appRoot string) string {
	if len(a.Cmds) > 0 {
		return "cd " + appRoot + " && " + strings.Join(a.Cmds, " ")
	}
	var cmds []string
	switch a.Type {
	case AppTypeKube:
		for _, f := range a.Files {
			cmds = append(cmds, "kubectl apply -f "+path.Join(appRoot, f))
		}
	case AppTypeShell:
		for _, f := range a.Files {
			cmds = append(cmds, "bash "+path.Join(appRoot, f))
		}
	case AppTypeHelm:
		return fmt.Sprintf("helm install %s %s", a.Name, appRoot)
	}
	return strings.Join(cmds, " && ")
}

// LaunchCmds returns the commands an install runs, from the rootfs, by
// default (no Clusterfile override): Launch.Cmds if there are any, else the
// launch command of each app in Launch.AppNames, in order. Names without an
// app are skipped, as sealer does.
func (e *ImageExtension) LaunchCmds() []string {
	if len(e.Launch.Cmds) > 0 {
		return append([]string(nil), e.Launch.Cmds...)
	}
	var cmds []string
	for _, name := range e.Launch.AppNames {
		if a := e.App(name); a != nil {
			if c := a.LaunchCmd(AppRoot(name)); c != "" {
				cmds = append(cmds, c)
			}
		}
	}
	return cmds
}
