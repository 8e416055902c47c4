{{/* Named templates shared by the chart. */}}

{{/* The chart name, at most 63 characters (a DNS label). */}}
{{- define "agentscaler.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of every object: <release>-<chart>, or the release name when
it already contains the chart name; at most 63 characters.
*/}}
{{- define "agentscaler.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* helm.sh/chart: <name>-<version> ('+' is not allowed in a label). */}}
{{- define "agentscaler.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The labels the Deployment selects its pods by; never change them. */}}
{{- define "agentscaler.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agentscaler.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The standard labels of every object. */}}
{{- define "agentscaler.labels" -}}
helm.sh/chart: {{ include "agentscaler.chart" . }}
{{ include "agentscaler.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: autoscaler
app.kubernetes.io/part-of: agentscaler
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- if .Values.commonLabels }}
{{ toYaml .Values.commonLabels }}
{{- end }}
{{- end }}

{{/* The ServiceAccount the pods run as. */}}
{{- define "agentscaler.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "agentscaler.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Lease the replicas elect a leader with, and its namespace. */}}
{{- define "agentscaler.leaseName" -}}
{{- default (include "agentscaler.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}
{{- define "agentscaler.leaseNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.leaseNamespace }}
{{- end }}

{{/*
The image reference: repository[:tag][@digest].  No default repository: the
chart is not published with an image anybody here owns, so the installer
names the one built from the Dockerfile.
*/}}
{{- define "agentscaler.image" -}}
{{- $repo := required "image.repository is required: the registry path of the image built from the repository's Dockerfile (e.g. --set image.repository=registry.example.com/agentscaler); the chart names no default image" .Values.image.repository }}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" $repo $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo $tag }}
{{- end }}
{{- end }}

{{/*
Refuses values that render but cannot work; included by deployment.yaml so
it runs on every render.  Helm shows the message as the error.
*/}}
{{- define "agentscaler.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicaCount > 1 needs leaderElection.enabled: two replicas without a Lease would both write" }}
{{- end }}
{{- if and .Values.leaderElection.enabled (ge (int .Values.leaderElection.renewDeadline) (int .Values.leaderElection.leaseDuration)) }}
{{- fail "leaderElection.renewDeadline must be below leaderElection.leaseDuration" }}
{{- end }}
{{- if and .Values.rbac.create .Values.rbac.namespaced }}
{{- if not .Values.watchNamespace }}
{{- fail "rbac.namespaced needs watchNamespace: without it agentscaler watches every namespace and needs the ClusterRole" }}
{{- end }}
{{- if and .Values.rbac.namespaces (not (has .Values.watchNamespace .Values.rbac.namespaces)) }}
{{- fail "rbac.namespaces must include watchNamespace" }}
{{- end }}
{{- end }}
{{- if and (eq .Values.secretAccess.mode "namespaces") (not .Values.secretAccess.namespaces) }}
{{- fail "secretAccess.mode namespaces needs secretAccess.namespaces: list the namespaces whose pools may read their own Secrets (or use mode none)" }}
{{- end }}
{{- range $i, $s := .Values.secretAccess.shared }}
{{- range $j, $t := $.Values.secretAccess.shared }}
{{- if and (lt $j $i) (eq $s $t) }}
{{- fail (printf "secretAccess.shared lists %s twice" $s) }}
{{- end }}
{{- end }}
{{- end }}
{{- include "agentscaler.crdsCurrent" . }}
{{- end }}

{{/*
Helm installs crds/ on the first install and never again (it neither
upgrades nor deletes them), so `helm upgrade` alone would run a new daemon
against the AgentPool/AgentQuota schemas of an older chart: fields the new
version reads would be pruned by the API server.  Each CRD carries the chart
version it came with (annotation agentscaler.io/chart-version); on install
and upgrade against a cluster (lookup answers nothing under `helm template`
and --dry-run=client) a CRD older than this chart stops the release with the
one command that upgrades it (README, "Upgrading").
*/}}
{{- define "agentscaler.crdsCurrent" -}}
{{- range $name := list "agentpools.agentscaler.io" "agentquotas.agentscaler.io" }}
{{- $crd := lookup "apiextensions.k8s.io/v1" "CustomResourceDefinition" "" $name }}
{{- if $crd }}
{{- $have := dig "metadata" "annotations" "agentscaler.io/chart-version" "0.0.0" $crd }}
{{- if semverCompare (printf "<%s" $.Chart.Version) $have }}
{{- fail (printf "the CRD %s in the cluster is from chart %s, older than this chart (%s); Helm never upgrades crds/: run `kubectl apply --server-side --force-conflicts -f charts/agentscaler/crds/` (the crds/ directory of this chart) first, then the helm upgrade again" $name $have $.Chart.Version) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
