# gw-rbac partner-platform policy (the one deployed to OPA as `rbac_pp`).
#
# Data: the roles and permissions of policy/rbac.toml as JSON under `data.gw_rbac`
#   {"roles": {"admin": {"level": 1, "permissions": [...]}, ...}, "permissions": {...}}
# Input (as the gateway sends it):
#   {"resource": "agents", "action": "read", "jwt": {"user_id": ..., "roles": [...], ...}}
# Query `data.rbac_pp.decision`:
#   {"allow": bool, "required": "agents:read", "deny_reason": string | null,
#    "user_info": {"role_level": number | null, "is_admin": bool, "permissions": [...]}}
#
# A role holds its own permissions plus those of every role with a higher level number.
# Keep the deny reasons in step with the native engine (src/engine/native.rs).
package rbac_pp

import rego.v1

roles := data.gw_rbac.roles

required := sprintf("%s:%s", [input.resource, input.action])

# The caller's roles that the policy knows.
known_roles contains name if {
	some name in input.jwt.roles
	roles[name]
}

# Effective permissions: each known role's own plus those of every role below it.
permissions contains perm if {
	some held in known_roles
	some role in roles
	role.level >= roles[held].level
	some perm in role.permissions
}

default allow := false

allow if required in permissions

role_level := min({roles[name].level | some name in known_roles}) if count(known_roles) > 0

default is_admin := false

is_admin if "admin" in input.jwt.roles

deny_reason := "no recognised role" if {
	count(known_roles) == 0
} else := sprintf("missing permission %s", [required]) if {
	not allow
}

default deny_reason_or_null := null

deny_reason_or_null := deny_reason

default role_level_or_null := null

role_level_or_null := role_level

decision := {
	"allow": allow,
	"required": required,
	"deny_reason": deny_reason_or_null,
	"user_info": {
		"role_level": role_level_or_null,
		"is_admin": is_admin,
		"permissions": sort([perm | some perm in permissions]),
	},
}
