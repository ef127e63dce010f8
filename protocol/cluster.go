package protocol

// ClusterGetRequest asks the coordinator for the applied cluster revision.
type ClusterGetRequest struct{}

func (*ClusterGetRequest) Type() MessageType { return TypeClusterGetRequest }

// ClusterRevision is the desired state a `drove run` or `drove apply` last
// brought the cluster to, kept in raft. Serial 0 (and no Clusterfile)
// means nothing was applied yet.
type ClusterRevision struct {
	Serial      uint64 `json:"serial"`                // 1, 2, ...: set by the coordinator when it records one
	Clusterfile string `json:"clusterfile,omitempty"` // canonical sealer.io/v2 YAML of the whole desired state
	Image       string `json:"image,omitempty"`       // as the user named it
	ImageDigest string `json:"imageDigest,omitempty"` // the manifest the nodes hold
	Runtime     string `json:"runtime,omitempty"`     // kubernetes, k3s, k0s, plain
	PlanID      string `json:"planID,omitempty"`      // the plan that applied it
	Applied     int64  `json:"applied,omitempty"`     // unix ms, when that plan succeeded
	// PreviousImage and PreviousImageDigest are the image the cluster ran
	// before the upgrade that made this revision (drove rollback goes back
	// to it); empty when no upgrade made it.
	PreviousImage       string `json:"previousImage,omitempty"`
	PreviousImageDigest string `json:"previousImageDigest,omitempty"`
}

func (*ClusterRevision) Type() MessageType { return TypeClusterRevision }
