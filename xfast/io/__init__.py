"""xfast.io"""
