package protocol

// Selector picks the nodes a step runs on. Empty fields do not filter; a
// node must match every non-empty field. The coordinator resolves it to
// concrete node IDs when the plan is submitted.
type Selector struct {
	Nodes  []string          `json:"nodes,omitempty"`  // node IDs or names
	Roles  []string          `json:"roles,omitempty"`  // any of these roles
	Labels map[string]string `json:"labels,omitempty"` // all of these labels
}

// Action is what a step does on a node. Kind picks an action the agent has
// registered ("shell", "write-file"; later issues add more).
type Action struct {
	Kind    string            `json:"kind"`
	Command string            `json:"command,omitempty"` // shell: run with sh -c; may use {{output "step" "name"}}
	Env     map[string]string `json:"env,omitempty"`
	Dir     string            `json:"dir,omitempty"`
	Path    string            `json:"path,omitempty"`    // write-file: destination
	Content string            `json:"content,omitempty"` // write-file: content (a template too)
	Mode    uint32            `json:"mode,omitempty"`    // write-file: permission bits; 0644 if 0
	// Distribution is what a distribute step fetches (or, Seed set, serves).
	Distribution *Distribution `json:"distribution,omitempty"`
	// Rootfs, when set, is the digest of an image delivered to the node
	// (by a distribute step): a shell step whose Dir is empty runs in that
	// image's unpacked root filesystem, and sees its path as $ROOTFS.
	Rootfs string `json:"rootfs,omitempty"`
	// Configs are the Clusterfile's Config documents a "render" step
	// applies in Rootfs after rendering its *.tmpl files with Env.
	Configs []ConfigFile `json:"configs,omitempty"`
}

// ConfigFile is one Clusterfile Config document: a file in an image's root
// filesystem replaced or merged before anything on the node uses it.
type ConfigFile struct {
	Path     string   `json:"path"`               // relative to the rootfs (or to the app's directory)
	AppName  string   `json:"appName,omitempty"`  // set: Path is under application/apps/<appName>/
	Data     string   `json:"data"`               // the content
	Strategy string   `json:"strategy,omitempty"` // "overwrite" (default) or "merge" (deep YAML merge)
	Process  []string `json:"process,omitempty"`  // value, toJson, toBase64, toSecret, applied in order
}

// RetryPolicy says how often a failed step is tried again.
type RetryPolicy struct {
	Attempts  int   `json:"attempts,omitempty"`  // total tries; 0 or 1 means no retry
	BackoffMs int64 `json:"backoffMs,omitempty"` // wait before the first retry, doubled each time
}

// StepSpec is one step of a plan, before it is resolved to nodes.
type StepSpec struct {
	Name       string      `json:"name"`
	Target     Selector    `json:"target"`
	Action     Action      `json:"action"`
	Retry      RetryPolicy `json:"retry,omitempty"`
	TimeoutMs  int64       `json:"timeoutMs,omitempty"`
	Idempotent bool        `json:"idempotent,omitempty"` // safe to run again after an interruption
	// NodeEnv adds environment per node, over Action.Env: the key is a
	// node ID, name or address (as in Selector.Nodes). It carries what
	// differs between hosts (a host's own env, its IP) without one step
	// per host.
	NodeEnv map[string]map[string]string `json:"nodeEnv,omitempty"`
}

// PhaseSpec is an ordered group of steps. Each step runs on its nodes, at
// most Parallel at a time (0: all at once, 1: strictly one node after
// another); the next step starts when the previous one finished everywhere.
type PhaseSpec struct {
	Name     string     `json:"name"`
	Parallel int        `json:"parallel,omitempty"`
	Steps    []StepSpec `json:"steps"`
}

// PlanSpec is what the CLI submits: phases run in order.
type PlanSpec struct {
	Name   string      `json:"name"`
	Phases []PhaseSpec `json:"phases"`
}

// PlanSubmit asks the coordinator to run a plan. PlanID, when set by the
// client, makes the submit idempotent: a retried request (after a timeout)
// finds the plan it already created instead of starting a second one.
type PlanSubmit struct {
	Plan   PlanSpec `json:"plan"`
	PlanID string   `json:"planID,omitempty"`
	// Revision, when set, becomes the applied cluster revision once the
	// plan succeeds (and only then): `drove run`/`apply` compare the next
	// Clusterfile against it.
	Revision *ClusterRevision `json:"revision,omitempty"`
}

func (*PlanSubmit) Type() MessageType { return TypePlanSubmit }

// PlanSubmitted answers PlanSubmit.
type PlanSubmitted struct {
	PlanID string `json:"planID"`
}

func (*PlanSubmitted) Type() MessageType { return TypePlanSubmitted }

// StepDispatch tells one agent to run one step. The leader sends it only
// after raft has recorded the dispatch; Term fences out old leaders.
type StepDispatch struct {
	StepID     string `json:"stepID"` // unique: plan/phase/step/node
	PlanID     string `json:"planID"`
	Node       string `json:"node"`
	Action     Action `json:"action"` // templates already rendered
	TimeoutMs  int64  `json:"timeoutMs,omitempty"`
	Idempotent bool   `json:"idempotent,omitempty"`
	Attempt    int    `json:"attempt"`
	Term       uint64 `json:"term"`
	Leader     string `json:"leader"`
	// WaitMs is how long the leader waits for this reply. An agent whose
	// step is still running when that time is nearly up answers with state
	// running; the leader asks again (a long poll), so a step of any length
	// never leaves the leader waiting on an agent that died.
	WaitMs int64 `json:"waitMs,omitempty"`
}

func (*StepDispatch) Type() MessageType { return TypeStepDispatch }

// Step states, as stored by the coordinator and reported by agents.
const (
	StatePending     = "pending"
	StateDispatched  = "dispatched"
	StateRunning     = "running"
	StateSucceeded   = "succeeded"
	StateFailed      = "failed"
	StateInterrupted = "interrupted" // the agent died while running it
	StateSkipped     = "skipped"     // not run because the plan failed first
	StateRejected    = "rejected"    // the agent refused the dispatch (Code says why: stale_term, wrong_node, bad_request); nothing ran, nothing was journaled
)

// StepResult is what an agent reports for a step. A repeated dispatch of a
// finished step is answered with the recorded result (Replayed set).
type StepResult struct {
	StepID       string            `json:"stepID"`
	Node         string            `json:"node"`
	Attempt      int               `json:"attempt"`
	State        string            `json:"state"`
	ExitCode     int               `json:"exitCode"`
	Output       string            `json:"output,omitempty"` // tail of stdout+stderr
	OutputDigest string            `json:"outputDigest,omitempty"`
	Outputs      map[string]string `json:"outputs,omitempty"` // named outputs for later steps
	Error        string            `json:"error,omitempty"`
	Code         ErrorCode         `json:"code,omitempty"`
	Replayed     bool              `json:"replayed,omitempty"`
	DurationMs   int64             `json:"durationMs,omitempty"`
}

func (*StepResult) Type() MessageType { return TypeStepResult }

// NodeHello is what an agent announces when it connects.
type NodeHello struct {
	Node Member `json:"node"`
}

func (*NodeHello) Type() MessageType { return TypeNodeHello }

// Member is a node as gossip and the registry see it.
type Member struct {
	ID         string            `json:"id"`
	Name       string            `json:"name,omitempty"`
	Address    string            `json:"address"`
	Roles      []string          `json:"roles,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Arch       string            `json:"arch,omitempty"`
	OS         string            `json:"os,omitempty"`
	Version    string            `json:"version,omitempty"`
	State      string            `json:"state"` // alive, suspect, dead, left
	APIPort    int               `json:"apiPort,omitempty"`
	NATSPort   int               `json:"natsPort,omitempty"`
	DataPort   int               `json:"dataPort,omitempty"`
	RaftPort   int               `json:"raftPort,omitempty"`
	RoutePort  int               `json:"routePort,omitempty"` // coordinators: NATS cluster port
	GossipPort int               `json:"gossipPort,omitempty"`
	Coord      bool              `json:"coordinator,omitempty"`
	// Registered: raft has recorded the node, so plans can target it
	// (gossip may show a node alive a moment before).
	Registered bool `json:"registered,omitempty"`
}

// StatusRequest asks for the cluster's state.
type StatusRequest struct{}

func (*StatusRequest) Type() MessageType { return TypeStatusRequest }

// Status is the cluster as the answering coordinator sees it.
type Status struct {
	Members []Member      `json:"members"`
	Leader  string        `json:"leader"`
	Voters  []string      `json:"voters"`
	Term    uint64        `json:"term"`
	Plans   []PlanSummary `json:"plans"`
	// Answerer is the coordinator that answered; NATSInBytes/NATSOutBytes
	// what its NATS server has carried (control traffic only).
	Answerer     string `json:"answerer,omitempty"`
	NATSInBytes  int64  `json:"natsInBytes,omitempty"`
	NATSOutBytes int64  `json:"natsOutBytes,omitempty"`
}

func (*Status) Type() MessageType { return TypeStatus }

// PlanSummary is one plan in a list.
type PlanSummary struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	State     string `json:"state"` // pending, running, succeeded, failed
	Steps     int    `json:"steps"` // node-steps in total
	Succeeded int    `json:"succeeded"`
	Failed    int    `json:"failed"`
	Created   int64  `json:"created"` // unix ms, stamped by the proposer
}

// PlanListRequest asks for all plans.
type PlanListRequest struct{}

func (*PlanListRequest) Type() MessageType { return TypePlanListRequest }

// PlanList answers PlanListRequest.
type PlanList struct {
	Plans []PlanSummary `json:"plans"`
}

func (*PlanList) Type() MessageType { return TypePlanList }

// PlanGetRequest asks for one plan in detail.
type PlanGetRequest struct {
	PlanID string `json:"planID"`
}

func (*PlanGetRequest) Type() MessageType { return TypePlanGetRequest }

// NodeStepStatus is one step on one node.
type NodeStepStatus struct {
	StepID   string            `json:"stepID"`
	Step     string            `json:"step"`
	Node     string            `json:"node"`
	State    string            `json:"state"`
	Attempt  int               `json:"attempt,omitempty"`
	Term     uint64            `json:"term,omitempty"`
	ExitCode int               `json:"exitCode,omitempty"`
	Output   string            `json:"output,omitempty"`
	Outputs  map[string]string `json:"outputs,omitempty"`
	Error    string            `json:"error,omitempty"`
	// DispatchedAt and FinishedAt are when raft recorded the dispatch and
	// the result (unix ms, stamped by the leader).
	DispatchedAt int64 `json:"dispatchedAt,omitempty"`
	FinishedAt   int64 `json:"finishedAt,omitempty"`
}

// PhaseStatus is one phase of a plan in detail.
type PhaseStatus struct {
	Name  string           `json:"name"`
	Steps []NodeStepStatus `json:"steps"`
}

// PlanDetail answers PlanGetRequest.
type PlanDetail struct {
	Summary PlanSummary   `json:"summary"`
	Phases  []PhaseStatus `json:"phases"`
}

func (*PlanDetail) Type() MessageType { return TypePlanDetail }

// Settled reports whether the plan has ended and none of its node-steps is
// still out on a node. A plan fails as soon as one node-step fails for
// good, while steps already sent elsewhere run on and are recorded: wait
// for Settled, not only the state, before reading every node's result.
func (d *PlanDetail) Settled() bool {
	if s := d.Summary.State; s != "succeeded" && s != "failed" {
		return false
	}
	for _, ph := range d.Phases {
		for _, s := range ph.Steps {
			if s.State == StateDispatched || s.State == StateRunning {
				return false
			}
		}
	}
	return true
}

// RetryRequest re-runs a plan's failed or interrupted steps (all of them,
// or the one named by StepID).
type RetryRequest struct {
	PlanID string `json:"planID"`
	StepID string `json:"stepID,omitempty"`
}

func (*RetryRequest) Type() MessageType { return TypeRetryRequest }

// Ack is an empty success reply.
type Ack struct{}

func (*Ack) Type() MessageType { return TypeAck }
