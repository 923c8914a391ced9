{{/* Name of one service's objects: <release>-<service>. */}}
{{- define "crm.fullname" -}}
{{- printf "%s-%s" .root.Release.Name .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Environment prefix the service reads: customer-profile → CRM_CUSTOMER_PROFILE. */}}
{{- define "crm.envPrefix" -}}
{{- printf "CRM_%s" (.name | upper | replace "-" "_") -}}
{{- end -}}

{{/* Selector labels of one service. */}}
{{- define "crm.selectorLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/* All labels of one service's objects. */}}
{{- define "crm.labels" -}}
{{ include "crm.selectorLabels" . }}
app.kubernetes.io/part-of: crm-platform
app.kubernetes.io/version: {{ .root.Values.image.tag | default .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* A service's values merged over the defaults. */}}
{{- define "crm.settings" -}}
{{- $defaults := deepCopy .root.Values.defaults -}}
{{- toYaml (mergeOverwrite $defaults (deepCopy .svc)) -}}
{{- end -}}

{{/* Name of the Secret holding a service's database and broker URLs. */}}
{{- define "crm.secretName" -}}
{{- if .svc.existingSecret -}}
{{- .svc.existingSecret -}}
{{- else -}}
{{- include "crm.fullname" . -}}
{{- end -}}
{{- end -}}

{{/* Image reference of a service. */}}
{{- define "crm.image" -}}
{{- $img := .root.Values.image -}}
{{- printf "%s/%s%s:%s" $img.registry $img.prefix .name ($img.tag | default .root.Chart.AppVersion) -}}
{{- end -}}
