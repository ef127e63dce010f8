package runtime

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"text/template"

	"github.com/drove-project/drove/protocol"
)

const (
	m0, m1, m2 = "10.0.0.1", "10.0.0.2", "10.0.0.3"
	w0, w1, w2 = "10.0.0.11", "10.0.0.12", "10.0.0.13"
	digest     = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
)

var (
	masterIPs = []string{m0, m1, m2}
	workerIPs = []string{w0, w1, w2}
	allIPs    = append(slices.Clone(masterIPs), workerIPs...)
)

// cluster3x3 is the test cluster: 3 masters and 3 workers, with env,
// labels, taints, aliases, commands and no hooks.
func cluster3x3(rt string) Desired {
	d := Desired{
		Image:            "registry.example/kubernetes:v1.27.3",
		ImageDigest:      digest,
		Distribution:     &protocol.Distribution{ID: "plan-1", Image: "registry.example/kubernetes:v1.27.3", ImageDigest: digest},
		Runtime:          rt,
		KubeVersion:      "v1.27.3",
		ContainerRuntime: "containerd",
		Env:              map[string]string{"PodCIDR": "100.64.0.0/10", "SvcCIDR": "10.96.0.0/16", "Greeting": "hi {{ .X }}"},
		Cmds:             []string{"kubectl apply -f manifests/app.yaml", "helm install x charts/x"},
		HostAliases:      []HostAlias{{IP: "10.0.0.100", Hostnames: []string{"reg.local", "git.local"}}},
		CertSANs:         []string{"k8s.example.com"},
	}
	for i, ip := range masterIPs {
		h := Host{IP: ip, Roles: []string{RoleMaster}, Env: map[string]string{"Zone": "z" + string(rune('a'+i))}, Source: "Clusterfile:10"}
		if i == 0 {
			h.Taints = []string{"node-role.kubernetes.io/control-plane:NoSchedule-"}
		}
		d.Hosts = append(d.Hosts, h)
	}
	for _, ip := range workerIPs {
		d.Hosts = append(d.Hosts, Host{IP: ip, Roles: []string{RoleNode, "gpu"}, Labels: map[string]string{"disk": "ssd"},
			Taints: []string{"gpu=true:NoSchedule"}})
	}
	return d
}

func mustLookup(t *testing.T, name string) Runtime {
	t.Helper()
	r, err := Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func install(t *testing.T, d Desired) protocol.PlanSpec {
	t.Helper()
	p, err := mustLookup(t, d.Runtime).Install(d)
	if err != nil {
		t.Fatalf("Install: %v", err)
	}
	return p
}

func phaseNames(p protocol.PlanSpec) []string {
	var out []string
	for _, ph := range p.Phases {
		out = append(out, ph.Name)
	}
	return out
}

// findStep returns a step and its phase by step name.
func findStep(t *testing.T, p protocol.PlanSpec, name string) (protocol.PhaseSpec, protocol.StepSpec) {
	t.Helper()
	for _, ph := range p.Phases {
		for _, st := range ph.Steps {
			if st.Name == name {
				return ph, st
			}
		}
	}
	t.Fatalf("plan %q has no step %q; phases %v", p.Name, name, phaseNames(p))
	return protocol.PhaseSpec{}, protocol.StepSpec{}
}

func hasStep(p protocol.PlanSpec, name string) bool {
	for _, ph := range p.Phases {
		for _, st := range ph.Steps {
			if st.Name == name {
				return true
			}
		}
	}
	return false
}

// stepsWithPrefix lists the names of steps that start with prefix, in
// plan order.
func stepsWithPrefix(p protocol.PlanSpec, prefix string) []string {
	var out []string
	for _, ph := range p.Phases {
		for _, st := range ph.Steps {
			if strings.HasPrefix(st.Name, prefix) {
				out = append(out, st.Name)
			}
		}
	}
	return out
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// renderTemplate renders text as the coordinator renders a step's fields:
// a Go template with an output function (answers from outputs, keyed
// "step/name").
func renderTemplate(t *testing.T, text string, outputs map[string]string) string {
	t.Helper()
	out := func(step, name string) (string, error) {
		v, ok := outputs[step+"/"+name]
		if !ok {
			return "", fmt.Errorf("no output %s/%s", step, name)
		}
		return v, nil
	}
	tmpl, err := template.New("x").Option("missingkey=error").Funcs(template.FuncMap{"output": out}).Parse(text)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, struct{ Node, PlanID, StepID string }{}); err != nil {
		t.Fatalf("render: %v", err)
	}
	return b.String()
}
