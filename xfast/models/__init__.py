"""xfast.models"""
