# Sandbox routing (gw-policy, GW-000-005): trial principals go to the sandbox backend,
# paid ones to production.
#
# Input:
#   principal: null | {"trial": null | {...}}
#
# Output: data.gw.sandbox_routing.decision =
#   {"target_backend": null | "sandbox" | "production", "reason": string}
# Reasons: no-principal, sandbox, production
package gw.sandbox_routing

import rego.v1

has_principal if input.principal != null

is_trial if input.principal.trial != null

default target_backend := null

target_backend := "sandbox" if {
	has_principal
	is_trial
}

target_backend := "production" if {
	has_principal
	not is_trial
}

default reason := "no-principal"

reason := target_backend if has_principal

decision := {"target_backend": target_backend, "reason": reason}
