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
# Scale mode: the replicas of target Deployments and StatefulSets come from
# list and watch (one watch per namespace, or per kind cluster-wide, instead
# of a GET per target); the cache keeps only names, versions and replica
# counts.  Nothing is read one by one, so no get.
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets"]
  verbs: ["list", "watch"]
# ... and are set through /scale only, with merge patches.
- apiGroups: ["apps"]
  resources: ["deployments/scale", "statefulsets/scale"]
  verbs: ["patch"]
# Ownership (scale mode): a target that an HPA or a KEDA ScaledObject scales
# is left to it (README "Adopting it beside KEDA"); both are listed and
# watched, never read one by one.  Where KEDA is not installed the
# ScaledObject list answers 404: none, asked again later.
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["list", "watch"]
# ... and KEDA's ScaledObjects (KEDA makes an HPA for each; the ScaledObject
# is the one named in the pool's Conflict condition).
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects"]
  verbs: ["list", "watch"]
# agent-sandbox warm pools: watched for their ready members (dispatch mode)
# and for the replicas of SandboxWarmPool targets (scale mode); get also
# reads a pool's spec.sandboxTemplateRef (below).
- apiGroups: ["extensions.agents.x-k8s.io"]
  resources: ["sandboxwarmpools"]
  verbs: ["get", "list", "watch"]
# Dispatch mode: get reads the template a warm pool names (every 30 s) for
# its pod's requests, the least a task is charged against the AgentQuota.
- apiGroups: ["extensions.agents.x-k8s.io"]
  resources: ["sandboxtemplates"]
  verbs: ["get"]
# Warm-pool sizing (dispatch) reads and sets the pool size through /scale;
# SandboxWarmPool targets (scale mode) set it there (patch).
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
