package sshpush

import (
	"strings"
)

// UnitName is the systemd unit InstallAgent writes on hosts with systemd.
const UnitName = "drove-agent.service"

// unitPath is where the unit goes.
const unitPath = "/etc/systemd/system/" + UnitName

// renderUnit is the systemd unit that runs binary with args, appending its
// output to logFile.
func renderUnit(binary string, args []string, logFile string) string {
	words := make([]string, 0, 1+len(args))
	words = append(words, systemdQuote(binary))
	for _, a := range args {
		words = append(words, systemdQuote(a))
	}
	var b strings.Builder
	b.WriteString("# Written by drove (sshpush); rewritten on every push.\n")
	b.WriteString("[Unit]\n")
	b.WriteString("Description=drove agent\n")
	b.WriteString("Wants=network-online.target\n")
	b.WriteString("After=network-online.target\n\n")
	b.WriteString("[Service]\n")
	b.WriteString("ExecStart=" + strings.Join(words, " ") + "\n")
	b.WriteString("Restart=always\n")
	b.WriteString("RestartSec=2\n")
	b.WriteString("LimitNOFILE=1048576\n")
	// append: needs systemd 240 (2018); older ones ignore the line and log
	// to the journal.
	b.WriteString("StandardOutput=append:" + strings.ReplaceAll(logFile, "%", "%%") + "\n")
	b.WriteString("StandardError=inherit\n\n")
	b.WriteString("[Install]\n")
	b.WriteString("WantedBy=multi-user.target\n")
	return b.String()
}
