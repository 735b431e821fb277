"""The contact centre behind the IVR: agent queues (skill groups), how long a caller will wait,
callbacks that keep the caller's place. Pure domain: live queue state comes in through the
`QueueState` protocol (implemented over AMI in `agi_app.ami`), storage through repository callables.
"""
