{{- define "rsg.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "rsg.serviceAccountName" -}}
{{- default (include "rsg.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "rsg.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "rsg.labels" -}}
{{ include "rsg.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* What the operator does to members, for a ClusterRole or a Role. */}}
{{- define "rsg.memberRules" -}}
{{- range .Values.cloneableKinds }}
- apiGroups: [{{ .apiGroup | quote }}]
  resources: {{ toJson .resources }}
  verbs: [get, list, watch, create, update, patch, delete]
{{- if ne .scale false }}
- apiGroups: [{{ .apiGroup | quote }}]
  resources: {{ include "rsg.scale" .resources }}
  verbs: [get, update, patch]
{{- end }}
{{- end }}
{{- range .Values.extraScalableKinds }}
- apiGroups: [{{ .apiGroup | quote }}]
  resources: {{ toJson .resources }}
  verbs: [get, list, watch]
- apiGroups: [{{ .apiGroup | quote }}]
  resources: {{ include "rsg.scale" .resources }}
  verbs: [get, update, patch]
{{- end }}
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
{{- end -}}

{{- define "rsg.scale" -}}
{{- $scale := list -}}
{{- range . }}{{ $scale = append $scale (printf "%s/scale" .) }}{{ end -}}
{{- toJson $scale -}}
{{- end -}}

{{/* The RSGs: read and watched (kopf), their finalizer patched, their status
written; finalizers: clones carry blockOwnerDeletion owner references to their RSG. */}}
{{- define "rsg.rsgRules" -}}
- apiGroups: [resourcescalinggroup.com]
  resources: [resourcescalinggroups]
  verbs: [get, list, watch, patch]
- apiGroups: [resourcescalinggroup.com]
  resources: [resourcescalinggroups/status]
  verbs: [get, patch]
- apiGroups: [resourcescalinggroup.com]
  resources: [resourcescalinggroups/finalizers]
  verbs: [update]
{{- end -}}
