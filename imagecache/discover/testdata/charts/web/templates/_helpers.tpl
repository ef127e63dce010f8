{{- define "web.image" -}}
{{ .repository }}:{{ .tag }}
{{- end -}}
