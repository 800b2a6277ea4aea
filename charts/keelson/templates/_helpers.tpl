{{/* The name of the chart, overridable. */}}
{{- define "keelson.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* A fully qualified app name, at most 63 characters (DNS names). */}}
{{- define "keelson.fullname" -}}
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

{{- define "keelson.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "keelson.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "keelson.selectorLabels" -}}
app.kubernetes.io/name: {{ include "keelson.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "keelson.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "keelson.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "keelson.tokenSecret" -}}
{{- default (printf "%s-webhook" (include "keelson.fullname" .)) .Values.webhook.existingSecret }}
{{- end }}

{{/* Whether keelson needs cluster-wide read access (all namespaces or a selector). */}}
{{- define "keelson.clusterWide" -}}
{{- if or .Values.allNamespaces .Values.namespaceSelector }}true{{ end }}
{{- end }}

{{/* The namespaces a Role is made in when keelson is not cluster-wide. */}}
{{- define "keelson.watchedNamespaces" -}}
{{- if .Values.namespaces }}{{ join "," .Values.namespaces }}{{ else }}{{ .Release.Namespace }}{{ end }}
{{- end }}

{{/*
What keelson does in a namespace it watches: Helm's release records (read, watch, write new
revisions, prune old ones) and its approval requests (ConfigMaps), and the objects a release's manifest holds, of whatever kind a chart
renders (read the live object, patch or server-side apply it, create what is missing, delete
what the new revision drops; hook Jobs and Pods are created, read and deleted the same way).
*/}}
{{- define "keelson.rules" -}}
- apiGroups: [""]
  resources: [{{ if eq .Values.driver "configmap" }}configmaps{{ else }}secrets, configmaps{{ end }}]
  verbs: [get, list, watch, create, update, delete]
- apiGroups: ["*"]
  resources: ["*"]
  verbs: [get, create, patch, delete]
# Plain workloads with keel.sh labels, and the history `kubectl rollout undo` leaves.
- apiGroups: [apps]
  resources: [deployments, statefulsets, daemonsets, replicasets, controllerrevisions]
  verbs: [list, watch]
- apiGroups: [batch]
  resources: [cronjobs]
  verbs: [list, watch]
{{- end }}
