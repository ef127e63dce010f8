package runtime

import "github.com/drove-project/drove/protocol"

// plain is the "plain" runtime: no Kubernetes, only the shared phases
// (distribute, render, hooks, init.sh, a container runtime if one is
// named, CMDS), to install any software across the hosts. master0 is the
// first master, or the first host if none has the role.
type plain struct{}

func (plain) name() string                                     { return "plain" }
func (plain) needsMaster() bool                                { return false }
func (plain) containerd() (string, bool)                       { return "", false }
func (plain) defaultCRI() string                               { return "" }
func (plain) api() *kubeAPI                                    { return nil }
func (plain) isNode(*cluster, Host) bool                       { return false }
func (plain) prepare(*cluster, []Host) []protocol.StepSpec     { return nil }
func (plain) create(*builder, *cluster) error                  { return nil }
func (plain) join(*builder, *cluster, []Host, []Host) error    { return nil }
func (plain) leave(*builder, *cluster, []Host, *cluster) error { return nil }
func (plain) reset(*cluster, []Host) []protocol.StepSpec       { return nil }
func (plain) upgrade(b *builder, old, new *cluster) error      { return nil }
