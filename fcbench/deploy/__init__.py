"""`fcbench deploy`: a function spec to Function Compute 3.0 (or the harness) through the SDK,
and to / from Serverless Devs ``s.yaml``.

Modules: `bodies` (spec -> API calls, pure), `client` (the SDK calls and the deploy / delete
sequences), `serverless_devs` (s.yaml 3.x export and import, 1.x import).
"""
