-- wrk script: POST one small chat completion (non-streaming) per request.
wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
wrk.body = '{"model":"bench-model","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Generate a product description"}],"max_tokens":16}'
