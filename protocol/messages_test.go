package protocol

import "testing"

func TestPlanDetailSettled(t *testing.T) {
	d := func(state string, steps ...string) *PlanDetail {
		pd := &PlanDetail{Summary: PlanSummary{State: state}, Phases: []PhaseStatus{{}}}
		for _, s := range steps {
			pd.Phases[0].Steps = append(pd.Phases[0].Steps, NodeStepStatus{State: s})
		}
		return pd
	}
	for _, c := range []struct {
		d    *PlanDetail
		want bool
	}{
		{d("running", StateSucceeded), false},
		{d("succeeded", StateSucceeded, StateSucceeded), true},
		{d("failed", StateFailed, StateSkipped), true},
		{d("failed", StateFailed, StateDispatched), false},
		{d("failed", StateFailed, StateRunning), false},
	} {
		if got := c.d.Settled(); got != c.want {
			t.Errorf("%s %+v: Settled %v, want %v", c.d.Summary.State, c.d.Phases, got, c.want)
		}
	}
}
