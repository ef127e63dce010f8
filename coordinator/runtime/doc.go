// Package runtime turns a cluster's desired state into plans: the ordered
// phases of steps (protocol.PlanSpec) the coordinator runs on the agents to
// install, grow, shrink, delete or upgrade a cluster made from a cluster
// image.
//
// One Runtime per cluster runtime ("kubernetes" with kubeadm, "k3s", "k0s",
// "plain" for non-Kubernetes software), found with Lookup. Every runtime
// shares sealer's Gen-2 order of operations (host aliases, distribute,
// render, hooks, host init scripts, container runtime, the runtime's own
// steps, labels and taints, CMDS/LAUNCH) and maps sealer's Gen-1 plugin
// phases onto the same points. Check validates a plan the way the
// coordinator will (unique names, outputs read only from earlier steps) and
// DryRun lists what a plan will run on which node.
//
// The package builds plans only; it runs nothing and does no IO.
package runtime
