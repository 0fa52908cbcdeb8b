# Trial mode (gw-policy, GW-000-002): a trial principal may run `limit` tasks per day;
# an expired trial may do nothing.
#
# Input:
#   principal:   null | {"trial": null | {"expires_at_ms": null | number}}
#   method:      HTTP method; a task is any POST, PUT, PATCH or DELETE
#   now_ms:      current time, ms since the Unix epoch
#   task_count:  tasks already run today, before this one (from your counter)
#   limit:       daily task limit
#
# Output: data.gw.trial_mode.decision = {"allow": bool, "reason": string}
# Reasons: not-trial, trial-expired, not-a-task, within-limit, trial-limit-exceeded
package gw.trial_mode

import rego.v1

task_methods := {"POST", "PUT", "PATCH", "DELETE"}

default is_trial := false

is_trial if input.principal.trial != null

expired if {
	is_trial
	at := input.principal.trial.expires_at_ms
	at != null
	at <= input.now_ms
}

is_task if input.method in task_methods

reason := "not-trial" if not is_trial

reason := "trial-expired" if {
	is_trial
	expired
}

reason := "not-a-task" if {
	is_trial
	not expired
	not is_task
}

reason := "within-limit" if {
	is_trial
	not expired
	is_task
	input.task_count < input.limit
}

reason := "trial-limit-exceeded" if {
	is_trial
	not expired
	is_task
	input.task_count >= input.limit
}

default allow := false

allow if reason in {"not-trial", "not-a-task", "within-limit"}

decision := {"allow": allow, "reason": reason}
