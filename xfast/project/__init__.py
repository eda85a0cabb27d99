"""xfast.project"""
