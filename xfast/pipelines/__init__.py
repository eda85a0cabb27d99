"""xfast.pipelines"""
