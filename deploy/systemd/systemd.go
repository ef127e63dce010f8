// Package systemd holds the systemd unit that runs the drove agent on a
// host, embedded so `drove agent install` writes the same file this
// directory ships.
package systemd

import _ "embed"

// UnitName is the agent's unit.
const UnitName = "drove-agent.service"

// Binary and Config are the paths the unit's ExecStart names.
const (
	Binary = "/usr/local/bin/drove"
	Config = "/etc/drove/agent.yaml"
)

// Unit is drove-agent.service as shipped.
//
//go:embed drove-agent.service
var Unit []byte
