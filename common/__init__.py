"""Django and DRF building blocks shared by the apps: error answers, the admin key, schema pieces, admin bases.

It knows no app; every app may use it.
"""
