{{/* Names shared by every template of the chart. */}}
{{- define "arcx.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "arcx.operatorName" -}}
{{- printf "%s-operator" (include "arcx.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "arcx.serviceAccountName" -}}
{{- default (include "arcx.operatorName" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "arcx.selectorLabels" -}}
app.kubernetes.io/name: arcx
app.kubernetes.io/component: operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "arcx.labels" -}}
{{ include "arcx.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
