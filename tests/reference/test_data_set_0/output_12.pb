B
loss_totalJ¿ù<“∂?