package clusterfile

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Marshal writes f as a canonical Clusterfile: the Cluster and Application
// as sealer.io/v2, then the Configs and Plugins as sealer.io/v1 (their only
// Gen-2 version), then the kubeadm documents as written. Defaults are
// spelled out, fields in a fixed order, so two revisions of the same
// Clusterfile marshal to the same bytes and a text diff shows what changed.
// Parse reads the result back to the same File (lines aside).
func (f *File) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	var docs []any
	if f.Cluster != nil {
		docs = append(docs, clusterOut(f.Cluster))
	}
	if f.Application != nil {
		docs = append(docs, applicationOut(f.Application))
	}
	for i, c := range f.Configs {
		docs = append(docs, docOut{
			APIVersion: "sealer.io/v1", Kind: "Config",
			Metadata: &metaOut{Name: fmt.Sprintf("config-%d", i+1)},
			Spec: configSpecOut{
				Path: c.Path, AppName: c.AppName, Data: c.Data, Strategy: c.Strategy,
				Process: strings.Join(c.Process, "|"),
			},
		})
	}
	for _, p := range f.Plugins {
		docs = append(docs, pluginOut(p))
	}
	for _, d := range docs {
		if err := enc.Encode(d); err != nil {
			return nil, fmt.Errorf("marshal Clusterfile %s: %w", f.Name, err)
		}
	}
	if len(docs) > 0 {
		if err := enc.Close(); err != nil {
			return nil, fmt.Errorf("marshal Clusterfile %s: %w", f.Name, err)
		}
	}
	for _, raw := range f.Kubeadm {
		if buf.Len() > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(raw.Data)
		if !bytes.HasSuffix(raw.Data, []byte("\n")) {
			buf.WriteByte('\n')
		}
	}
	return buf.Bytes(), nil
}

type docOut struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Metadata   *metaOut `yaml:"metadata,omitempty"`
	Spec       any      `yaml:"spec"`
}

type metaOut struct {
	Name string `yaml:"name,omitempty"`
}

func meta(name string) *metaOut {
	if name == "" {
		return nil
	}
	return &metaOut{Name: name}
}

type clusterSpecOut struct {
	Image            string       `yaml:"image,omitempty"`
	Runtime          string       `yaml:"runtime,omitempty"`
	Env              []string     `yaml:"env,omitempty"`
	CmdArgs          []string     `yaml:"cmd_args,omitempty"`
	Cmd              []string     `yaml:"cmd,omitempty"`
	AppNames         []string     `yaml:"appNames,omitempty"`
	Hosts            []hostOut    `yaml:"hosts,omitempty"`
	SSH              *sshOut      `yaml:"ssh,omitempty"`
	ContainerRuntime *criOut      `yaml:"containerRuntime,omitempty"`
	HostAliases      []aliasOut   `yaml:"hostAliases,omitempty"`
	Registry         *registryOut `yaml:"registry,omitempty"`
	DataRoot         string       `yaml:"dataRoot,omitempty"`
}

type hostOut struct {
	IPs    []string          `yaml:"ips"`
	Roles  []string          `yaml:"roles"`
	SSH    *sshOut           `yaml:"ssh,omitempty"`
	Env    []string          `yaml:"env,omitempty"`
	Labels map[string]string `yaml:"labels,omitempty"`
	Taints []string          `yaml:"taints,omitempty"`
}

// sshOut writes the port as a string, as sealer's own types do.
type sshOut struct {
	User      string `yaml:"user,omitempty"`
	Passwd    string `yaml:"passwd,omitempty"`
	Pk        string `yaml:"pk,omitempty"`
	PkPasswd  string `yaml:"pkPasswd,omitempty"`
	Port      string `yaml:"port,omitempty"`
	Encrypted bool   `yaml:"encrypted,omitempty"`
}

type criOut struct {
	Type string `yaml:"type"`
}

type aliasOut struct {
	IP        string   `yaml:"ip"`
	Hostnames []string `yaml:"hostnames"`
}

type registryOut struct {
	Local    *localOut    `yaml:"localRegistry,omitempty"`
	External *externalOut `yaml:"externalRegistry,omitempty"`
}

type localOut struct {
	Domain   string   `yaml:"domain"`
	Port     int      `yaml:"port"`
	Username string   `yaml:"username,omitempty"`
	Password string   `yaml:"password,omitempty"`
	HA       bool     `yaml:"ha"`
	Insecure bool     `yaml:"insecure"`
	Cert     *certOut `yaml:"cert,omitempty"`
}

type certOut struct {
	SubjectAltName sanOut `yaml:"subjectAltName"`
}

type sanOut struct {
	DNSNames []string `yaml:"dnsNames,omitempty"`
	IPs      []string `yaml:"ips,omitempty"`
}

type externalOut struct {
	Domain   string `yaml:"domain"`
	Port     int    `yaml:"port,omitempty"`
	Username string `yaml:"username,omitempty"`
	Password string `yaml:"password,omitempty"`
}

func sshToOut(s SSH) *sshOut {
	if s == (SSH{}) {
		return nil
	}
	o := &sshOut{User: s.User, Passwd: s.Passwd, Pk: s.Pk, PkPasswd: s.PkPasswd, Encrypted: s.Encrypted}
	if s.Port != 0 {
		o.Port = strconv.Itoa(s.Port)
	}
	return o
}

func clusterOut(c *Cluster) docOut {
	spec := clusterSpecOut{
		Image: c.Image, Runtime: c.Runtime, Env: c.Env, CmdArgs: c.CmdArgs, Cmd: c.Cmds, AppNames: c.AppNames,
		SSH: sshToOut(c.SSH), DataRoot: c.DataRoot,
	}
	for _, h := range c.Hosts {
		spec.Hosts = append(spec.Hosts, hostOut{IPs: h.IPs, Roles: h.Roles, SSH: sshToOut(h.SSH), Env: h.Env, Labels: h.Labels, Taints: h.Taints})
	}
	if c.ContainerRuntime != "" {
		spec.ContainerRuntime = &criOut{Type: c.ContainerRuntime}
	}
	for _, a := range c.HostAliases {
		spec.HostAliases = append(spec.HostAliases, aliasOut{IP: a.IP, Hostnames: a.Hostnames})
	}
	if l, e := c.Registry.Local, c.Registry.External; l != nil || e != nil {
		spec.Registry = &registryOut{}
		if l != nil {
			spec.Registry.Local = &localOut{Domain: l.Domain, Port: l.Port, Username: l.Username, Password: l.Password, HA: l.HA, Insecure: l.Insecure}
			if len(l.DNSNames) > 0 || len(l.IPs) > 0 {
				spec.Registry.Local.Cert = &certOut{SubjectAltName: sanOut{DNSNames: l.DNSNames, IPs: l.IPs}}
			}
		}
		if e != nil {
			spec.Registry.External = &externalOut{Domain: e.Domain, Port: e.Port, Username: e.Username, Password: e.Password}
		}
	}
	return docOut{APIVersion: "sealer.io/v2", Kind: "Cluster", Metadata: meta(c.Name), Spec: spec}
}

type appSpecOut struct {
	Cmds       []string       `yaml:"cmds,omitempty"`
	LaunchApps []string       `yaml:"launchApps,omitempty"`
	Configs    []appConfigOut `yaml:"configs,omitempty"`
}

type appConfigOut struct {
	Name   string       `yaml:"name"`
	Env    []string     `yaml:"env,omitempty"`
	Files  []appFileOut `yaml:"files,omitempty"`
	Launch *launchOut   `yaml:"launch,omitempty"`
}

type appFileOut struct {
	Path     string `yaml:"path"`
	Strategy string `yaml:"strategy,omitempty"`
	Data     string `yaml:"data"`
}

type launchOut struct {
	Cmds []string `yaml:"cmds"`
}

func applicationOut(a *Application) docOut {
	spec := appSpecOut{Cmds: a.Cmds, LaunchApps: a.LaunchApps}
	for _, c := range a.Configs {
		co := appConfigOut{Name: c.Name, Env: c.Env}
		for _, f := range c.Files {
			co.Files = append(co.Files, appFileOut{Path: f.Path, Strategy: f.Strategy, Data: f.Data})
		}
		if len(c.LaunchCmds) > 0 {
			co.Launch = &launchOut{Cmds: c.LaunchCmds}
		}
		spec.Configs = append(spec.Configs, co)
	}
	return docOut{APIVersion: "sealer.io/v2", Kind: "Application", Metadata: meta(a.Name), Spec: spec}
}

type configSpecOut struct {
	Path     string `yaml:"path"`
	AppName  string `yaml:"appName,omitempty"`
	Data     string `yaml:"data"`
	Strategy string `yaml:"strategy,omitempty"`
	Process  string `yaml:"process,omitempty"`
}

type pluginSpecOut struct {
	Type   string `yaml:"type"`
	Action string `yaml:"action"`
	Scope  string `yaml:"scope,omitempty"`
	On     string `yaml:"on,omitempty"`
	Data   string `yaml:"data,omitempty"`
}

func pluginOut(p Plugin) docOut {
	spec := pluginSpecOut{Type: p.Type, Action: strings.Join(p.Phases, "|"), Data: p.Data}
	switch {
	case p.BackupPath != "":
		spec.On = p.BackupPath
	case len(p.On.Roles) > 0:
		spec.Scope = strings.Join(p.On.Roles, "|")
	case len(p.On.IPs) > 0:
		spec.On = strings.Join(p.On.IPs, ",")
	case p.On.Selector != "":
		spec.On = p.On.Selector
	}
	return docOut{APIVersion: "sealer.io/v1", Kind: "Plugin", Metadata: meta(p.Name), Spec: spec}
}
