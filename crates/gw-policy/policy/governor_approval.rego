# Governor approval (gw-policy, GW-000-003): sensitive actions need a governor's approval.
#
# Input:
#   method:    HTTP method
#   path:      normalized request path
#   approval:  "missing" | "valid" | "invalid" (validate and consume the token first)
#
# Output: data.gw.governor_approval.decision =
#   {"allow": bool, "reason": string, "action": null | string}
# Reasons: not-sensitive, approved, approval-required, approval-invalid
#
# Route patterns use the gw-core syntax: `{param}` is one segment, a trailing `/*` is the
# path and everything below it. A route for GET is a route for HEAD too (HEAD runs the GET
# handler). The first matching route wins (the defaults do not
# overlap; the Rust layer picks the most specific one).
package gw.governor_approval

import rego.v1

routes := [
	{"action": "delete_agent", "methods": {"DELETE"}, "pattern": "/api/{version}/agents/*"},
	{"action": "update_billing", "methods": {"PUT", "PATCH"}, "pattern": "/api/{version}/billing/*"},
	{"action": "change_subscription", "methods": {"POST"}, "pattern": "/api/{version}/subscriptions/{id}/change"},
	{"action": "export_data", "methods": {"GET", "POST"}, "pattern": "/api/{version}/data/export"},
	{"action": "delete_customer", "methods": {"DELETE"}, "pattern": "/api/{version}/customers/*"},
]

segments(p) := [s | some s in split(p, "/"); s != ""]

path_segments := segments(input.path)

is_param(s) if {
	startswith(s, "{")
	endswith(s, "}")
}

segment_matches(pat, _) if is_param(pat)

segment_matches(pat, seg) if pat == seg

is_subtree(r) if endswith(r.pattern, "/*")

method_matches(r) if input.method in r.methods

method_matches(r) if {
	input.method == "HEAD"
	"GET" in r.methods
}

route_matches(r) if {
	method_matches(r)
	not is_subtree(r)
	pat := segments(r.pattern)
	count(pat) == count(path_segments)
	every i, p in pat {
		segment_matches(p, path_segments[i])
	}
}

route_matches(r) if {
	method_matches(r)
	is_subtree(r)
	pat := segments(trim_suffix(r.pattern, "/*"))
	count(path_segments) >= count(pat)
	every i, p in pat {
		segment_matches(p, path_segments[i])
	}
}

matched := [r.action | some r in routes; route_matches(r)]

default action := null

action := matched[0] if count(matched) > 0

reason := "not-sensitive" if count(matched) == 0

reason := "approved" if {
	count(matched) > 0
	input.approval == "valid"
}

reason := "approval-required" if {
	count(matched) > 0
	input.approval == "missing"
}

reason := "approval-invalid" if {
	count(matched) > 0
	input.approval == "invalid"
}

default allow := false

allow if reason in {"not-sensitive", "approved"}

decision := {"allow": allow, "reason": reason, "action": action}
