"""What operators need from a worker: dead letters, consumer lag, memory and Faust's metrics."""
