"""How TensorFlow runs the model on a CPU: the instruction set oneDNN uses (`isa`), the
training speed under each user setting (`settings`), the choices of `glow_tfp.execution`
(`parts_speed`) and the time per op type (`op_profile`)."""
