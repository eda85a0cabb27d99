"""xfast.align"""
