"""The public face: ``DistributedEstimator``, ``DistributedSearchCV``, the halving
searches, the joblib backend "distsk" and the plan's notebook display."""
