{{/* Names, labels and small derived values shared by the templates. */}}

{{- define "dkj.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "dkj.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "dkj.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dkj.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "dkj.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "dkj.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dask-kube-jobs
{{- end -}}

{{- define "dkj.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "dkj.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- /* "latest" is refused here rather than in values.schema.json: Helm's schema validator words a
refused value as "'not' failed", this says what to do. */ -}}
{{- define "dkj.image" -}}
{{- if eq (toString .Values.image.tag) "latest" -}}
{{- fail (printf "image.tag: \"latest\" is refused: a release must run the operator version it was tested with. Leave image.tag empty for the chart's appVersion (%s), or set an exact version or image.digest" .Chart.AppVersion) -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* True (non-empty) when the operator is restricted to watchNamespaces. */}}
{{- define "dkj.namespaced" -}}
{{- if eq .Values.rbac.scope "namespaced" -}}
{{- if not .Values.watchNamespaces -}}
{{- fail "watchNamespaces: at least one namespace is required when rbac.scope is \"namespaced\"" -}}
{{- end -}}
true
{{- end -}}
{{- end -}}

{{/* The name of the kopf peering object(s) the replicas elect their leader through. */}}
{{- define "dkj.peeringName" -}}
{{- include "dkj.fullname" . -}}
{{- end -}}

{{/*
The operator's rules on namespaced resources: the same list goes into the ClusterRole
(rbac.scope=cluster) and into each namespace's Role (rbac.scope=namespaced). Keep it to what
dask_kube_jobs/operator/ calls; every verb is spelt out (no "*").
*/}}
{{- define "dkj.namespacedRules" -}}
# The Dask resources: kopf watches them, keeps its finalizer and progress annotations on them;
# the reconcilers create DaskClusters for DaskJobs and DaskWorkerGroups for DaskClusters, and
# delete finished ones (TTL after finish, idle timeout).
- apiGroups: ["kubernetes.dask.org"]
  resources: ["daskclusters", "daskworkergroups", "daskjobs", "daskautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["kubernetes.dask.org"]
  resources: ["daskclusters/status", "daskworkergroups/status", "daskjobs/status", "daskautoscalers/status"]
  verbs: ["get", "patch", "update"]
# Scheduler, worker and runner Pods; the runner's log tail goes into a failed job's status.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
# The scheduler Service of each DaskCluster.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Events recording every step (core/v1, as kopf and kubectl describe use them).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}
