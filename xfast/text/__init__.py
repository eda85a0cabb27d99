"""xfast.text"""
