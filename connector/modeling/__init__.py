"""What training and inference share: the model's files, image records, box conversions, the
predictor and the backbones. Neither `training` nor `inference` imports the other; both import this."""
