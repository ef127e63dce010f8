package protocol

import "text/template/parse"

// OutputCalls calls fn for every {{output STEP NAME}} in a parsed action
// template (see Action.Command) whose STEP is a string literal. name is
// NAME when it is a literal too, else "". Calls nested in if, range, with,
// pipelines and parentheses are found as well.
func OutputCalls(n parse.Node, fn func(step, name string)) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			OutputCalls(c, fn)
		}
	case *parse.ActionNode:
		OutputCalls(n.Pipe, fn)
	case *parse.IfNode:
		outputCallsIn(&n.BranchNode, fn)
	case *parse.RangeNode:
		outputCallsIn(&n.BranchNode, fn)
	case *parse.WithNode:
		outputCallsIn(&n.BranchNode, fn)
	case *parse.TemplateNode:
		OutputCalls(n.Pipe, fn)
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for _, c := range n.Cmds {
			OutputCalls(c, fn)
		}
	case *parse.CommandNode:
		if len(n.Args) >= 2 {
			if id, ok := n.Args[0].(*parse.IdentifierNode); ok && id.Ident == "output" {
				if step, ok := n.Args[1].(*parse.StringNode); ok {
					name := ""
					if len(n.Args) >= 3 {
						if s, ok := n.Args[2].(*parse.StringNode); ok {
							name = s.Text
						}
					}
					fn(step.Text, name)
				}
			}
		}
		for _, a := range n.Args {
			OutputCalls(a, fn)
		}
	case *parse.ChainNode:
		OutputCalls(n.Node, fn)
	}
}

func outputCallsIn(b *parse.BranchNode, fn func(step, name string)) {
	OutputCalls(b.Pipe, fn)
	OutputCalls(b.List, fn)
	OutputCalls(b.ElseList, fn)
}
