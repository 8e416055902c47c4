{{/*
The rules agentscaler needs in the namespaces it works in: exactly the verbs
it uses, each with the reason.  Shared by the ClusterRole (rbac.namespaced
false) and the namespaced Roles (rbac.namespaced true).  The Lease rules are
in lease-role.yaml: they only ever apply to one namespace and one name; the
Secret rules of secretAccess.mode namespaces and secretAccess.shared are in
secret-roles.yaml.
*/}}
{{- define "agentscaler.rules" -}}
# AgentPool and AgentQuota objects are the configuration: the informers list
# and watch them, and get re-reads one after a watch gap.
- apiGroups: ["agentscaler.io"]
  resources: ["agentpools", "agentquotas"]
  verbs: ["get", "list", "watch"]
# Their status (replicas, backlog, claims, usage, conditions) is written with
# merge patches to the status subresource only; the spec is never changed.
- apiGroups: ["agentscaler.io"]
  resources: ["agentpools/status", "agentquotas/status"]
  verbs: ["patch"]
# Scale mode: read and set the replicas of target Deployments and
# StatefulSets through /scale only; the workloads themselves are not read.
- apiGroups: ["apps"]
  resources: ["deployments/scale", "statefulsets/scale"]
  verbs: ["get", "patch"]
# agent-sandbox warm pools: watched for their ready members (dispatch mode);
# get also reads a pool's spec.sandboxTemplateRef (below).
- apiGroups: ["extensions.agents.x-k8s.io"]
  resources: ["sandboxwarmpools"]
  verbs: ["get", "list", "watch"]
# Dispatch mode: get reads the template a warm pool names (every 30 s) for
# its pod's requests, the least a task is charged against the AgentQuota.
- apiGroups: ["extensions.agents.x-k8s.io"]
  resources: ["sandboxtemplates"]
  verbs: ["get"]
# Warm-pool sizing (dispatch) and SandboxWarmPool targets (scale mode) set
# the pool size through /scale.
- apiGroups: ["extensions.agents.x-k8s.io"]
  resources: ["sandboxwarmpools/scale"]
  verbs: ["get", "patch"]
# Dispatch mode: one SandboxClaim per task.  create admits a task, get
# adopts a claim an earlier attempt made (409), list and watch follow the
# claims agentscaler manages (and rebuild its state on start), delete ends a
# task.
- apiGroups: ["extensions.agents.x-k8s.io"]
  resources: ["sandboxclaims"]
  verbs: ["get", "list", "watch", "create", "delete"]
# Dispatch mode: get reads the Sandbox of a claim someone else deleted
# (possibly in the background), so the task's quota is freed only once the
# Sandbox is gone.
- apiGroups: ["agents.x-k8s.io"]
  resources: ["sandboxes"]
  verbs: ["get"]
# Events about pools, quotas and claims (scaling, quota limits, rejected
# tasks); patch updates the count of a repeated Event.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if eq .Values.secretAccess.mode "cluster" }}
# CRD mode: an AgentPool's source.authSecretRef names a Secret of the pool's
# own namespace; get reads that one Secret when the daemon connects to the
# broker.  Secrets are never listed or watched (secretAccess.mode namespaces
# or none narrows or drops this rule).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end }}
{{- end }}
