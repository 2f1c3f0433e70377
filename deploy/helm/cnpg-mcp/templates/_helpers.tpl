{{/* Shared pieces. Object names are fixed (cnpg-mcp-operator, cnpg-mcp-gateway) as in deploy/: the
     RBAC, docs and tests name them; install the chart once per cluster. */}}

{{- define "cnpg-mcp.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The operator's identity as the API server sees it (the status-owner admission policy names it). */}}
{{- define "cnpg-mcp.operatorUser" -}}
system:serviceaccount:{{ .Release.Namespace }}:cnpg-mcp-operator
{{- end }}
